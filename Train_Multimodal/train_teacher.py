"""Train a supervised multitask EMENet-VA (audio-visual) teacher on Aff-wild2 (or `emenet synth` data).

Same options as Training/train_teacher.py, with --modality audiovisual by default, plus
--window_size 0.63 --sr 16000 (audio per frame), --audio_dir (extract_audio_files.py output) and
--auxiliary VAD (voice-activity head taught by silero-vad, or --vad_teacher vad_marblenet.nemo).

Example:
    python Train_Multimodal/train_teacher.py --data_root data/affwild2 --name teacher_exp_0 --seed 0 --auxiliary VAD
"""
from emenet.cli import Script

script = Script("train", "Train_Multimodal/train_teacher.py", __doc__, config_defaults={"modality": "audiovisual"})
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
