"""Decode every video's audio track (16 kHz mono .npy) ahead of EMENet-VA training; resumable.

Example:
    python Train_Multimodal/extract_audio_files.py --video_dir data/affwild2/videos --audio_outdir data/affwild2/audio
    python Train_Multimodal/train_teacher.py --data_root data/affwild2 --audio_dir data/affwild2/audio
"""
from emenet.cli import Script

script = Script("extract-audio", "Train_Multimodal/extract_audio_files.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
