"""Explanations: Shapley attributions, permutation importance and their views."""
