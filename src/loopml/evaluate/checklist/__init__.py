"""Behavioural tests after CheckList: golden cases (MFT), invariance and direction tests."""
