"""Documents about a version: the model card, its report and the production inventory."""
