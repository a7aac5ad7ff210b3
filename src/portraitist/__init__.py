"""portraitist: personalised portraits from a handful of photos (staged Stable Diffusion fine-tuning)."""

__version__ = "0.1.0"
