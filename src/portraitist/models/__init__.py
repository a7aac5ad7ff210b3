"""Base models: loading Stable Diffusion and CLIP, the offline CLIP tokenizer, tiny random builders."""

# here, not in loading.py, so that settings models can name it without importing torch
DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
