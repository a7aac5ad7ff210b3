"""Real-ESRGAN upscaling (thesis 2.4.2): `upscale` for the stage, `upscale_image` for one image
(models/esrgan.py, which prepare uses too)."""

from portraitist.models.esrgan import upscale_image
from portraitist.upscale.config import UpscaleConfig
from portraitist.upscale.stage import UpscaleResult, upscale

__all__ = ["UpscaleConfig", "UpscaleResult", "upscale", "upscale_image"]
