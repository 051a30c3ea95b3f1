"""Wire formats: the three prediction protocols, V2 tensors, request validation and context columns."""
