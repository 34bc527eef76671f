"""Live EMENet demo: webcam (or a video file) -> face box, AUs, expression, valence/arousal with
uncertainty bars and the frames per second, shown in a window and/or recorded.

Ensembles: give several --names (or --checkpoint files); the bars then split the uncertainty
into aleatoric and epistemic parts. Press q in the window to quit.

Example:
    python Demo/Demo_Visual_Model.py --names teacher_exp_0 teacher_exp_1 --load_epochs 4 6 --save_file output.avi
    python Demo/Demo_Visual_Model.py --checkpoint model.pth --source utterance_1.mp4 --headless \\
        --save_file output.avi --max_frames 300
"""
from emenet.cli import Script

script = Script("demo", "Demo/Demo_Visual_Model.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
