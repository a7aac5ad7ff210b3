"""Dataset preparation (thesis 2.1-2.2): photos in, square face crops, masks and captions out."""

from portraitist.prepare.config import PrepareConfig
from portraitist.prepare.stage import PrepareResult, prepare

__all__ = ["PrepareConfig", "PrepareResult", "prepare"]
