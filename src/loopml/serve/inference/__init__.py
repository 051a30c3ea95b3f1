"""Inference: the model pool, routing (champion, canary, shadows), batching, the runtime."""
