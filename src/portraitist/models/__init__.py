"""Base models: loading Stable Diffusion and CLIP, the offline CLIP tokenizer, tiny random builders."""
