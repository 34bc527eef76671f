"""Predict AUs, the expression, valence and arousal, with uncertainty, for one face image.

A 112x112 image is taken as an aligned face crop (like Aff-wild2's cropped_aligned frames); a
larger photo goes through the face detector first. Writes <image>_emenet.png/.pdf/.json.

Example:
    python Training/inference_one_image.py --names teacher_exp_0 --load_epochs 4
    python Training/inference_one_image.py --names a b c --load_epochs 4 6 5 --image photo.jpg --cuda
    python Training/inference_one_image.py --checkpoint model.pth --image example_image/astronaut_photo.jpg
"""
from pathlib import Path

from emenet.cli import Script

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "example_image" / "astronaut_112.jpg"
script = Script("image", "Training/inference_one_image.py", __doc__, defaults={"image": DEFAULT_IMAGE})
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
