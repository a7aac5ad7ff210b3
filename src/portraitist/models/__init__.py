"""The models every stage shares: loading Stable Diffusion (model families, single files) and CLIP,
the trained model a run leaves, CPU attention kernels, dlib face descriptors, Real-ESRGAN, the
offline CLIP tokenizer and tiny random builders."""
