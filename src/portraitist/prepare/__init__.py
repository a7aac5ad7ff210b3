"""Dataset preparation (thesis 2.1-2.2): photos in, square face crops, masks and captions out.

The stage itself is `portraitist.prepare.stage.prepare`; its settings
`portraitist.prepare.config.PrepareConfig`.
"""
