"""The models every stage shares: loading Stable Diffusion (model families, single files) and CLIP,
the trained model a run leaves, CPU attention kernels, dlib face descriptors, Real-ESRGAN, the
offline CLIP tokenizer and tiny random builders."""

# here, not in loading.py, so that settings models can name it without importing torch
DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
