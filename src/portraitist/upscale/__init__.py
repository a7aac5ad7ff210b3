"""Real-ESRGAN upscaling (thesis 2.4.2): `upscale_image` for one image, `upscale` for the stage."""

from portraitist.upscale.config import UpscaleConfig
from portraitist.upscale.esrgan import DEFAULT_MODEL, SHIPPED_MODELS, upscale_image
from portraitist.upscale.stage import UpscaleResult, upscale

__all__ = ["DEFAULT_MODEL", "SHIPPED_MODELS", "UpscaleConfig", "UpscaleResult", "upscale", "upscale_image"]
