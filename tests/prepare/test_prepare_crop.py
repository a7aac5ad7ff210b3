"""Square crops around the face, padded by repeating edge pixels (thesis 2.1.1)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from portraitist.prepare.crop import cut_with_edge_padding, face_crop, square_around
from portraitist.prepare.detect import PersonDetector
from portraitist.prepare.quality import sharpness
from portraitist.samples import astronaut


def test_the_square_is_centred_on_the_face_and_margin_faces_wider() -> None:
    x0, y0, x1, y1 = square_around((100, 50, 200, 170), margin=1.0)  # 100 x 120 face
    assert x1 - x0 == y1 - y0 == 360  # (1 + 2 * 1.0) * 120
    assert (x0 + x1) / 2 == 150 and (y0 + y1) / 2 == 110


def test_borders_repeat_the_edge_pixels_instead_of_black_bars() -> None:
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    cut = np.asarray(cut_with_edge_padding(Image.fromarray(pixels), (-2, -1, 4, 5)))
    assert cut.shape == (6, 6, 3)
    assert (cut[1:5, 2:6] == pixels[:, 0:4]).all()  # the photo itself
    assert (cut[1:5, 0] == pixels[:, 0]).all() and (cut[1:5, 1] == pixels[:, 0]).all()  # left edge repeated
    assert (cut[0, 2:6] == pixels[0, 0:4]).all()  # top edge repeated
    assert (cut[5, 2:6] == pixels[3, 0:4]).all()  # bottom edge repeated


def test_the_crop_has_the_training_resolution_and_the_face_at_its_centre(detector: PersonDetector) -> None:
    face = detector.subject(astronaut()).face.box
    crop, box = face_crop(astronaut(), face, margin=1.0, resolution=512, upscale=False)
    assert crop.size == (512, 512)
    assert box[0] < 0 or box[1] < 0  # this face is near the top: the square runs past the photo
    found = detector.find_faces(crop)
    assert len(found) == 1
    cx, cy = (found[0].box[0] + found[0].box[2]) / 2, (found[0].box[1] + found[0].box[3]) / 2
    assert abs(cx - 256) < 20 and abs(cy - 256) < 20
    assert 0.25 < (found[0].box[2] - found[0].box[0]) / 512 < 0.42  # a third of the crop, as margin 1 says


def test_small_faces_can_be_enlarged_with_real_esrgan(detector: PersonDetector) -> None:
    small = astronaut().resize((320, 320), Image.LANCZOS)  # the crop square is ~200 px
    face = detector.subject(small).face.box
    plain, _ = face_crop(small, face, margin=1.0, resolution=512, upscale=False)
    # the compact model: the photo model (the default) takes a minute on a CPU
    learned, _ = face_crop(
        small, face, margin=1.0, resolution=512, upscale=True, upscaler="realesr-animevideov3"
    )
    assert learned.size == plain.size == (512, 512)
    assert sharpness(learned) > sharpness(plain)  # the learned upscaler restores edges Lanczos blurs
