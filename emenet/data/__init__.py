"""Reading Aff-wild2 from its official layout: annotation files, face crops and videos."""
from emenet.data.affwild2 import SPLITS, AffWild2Index, load_affwild2_index, normalize_split
from emenet.data.annotations import ANNOTATED_TASKS, LABEL_COLUMNS, read_annotation_file
from emenet.data.video_info import VideoInfo, find_video, video_info

__all__ = ["ANNOTATED_TASKS", "AffWild2Index", "LABEL_COLUMNS", "SPLITS", "VideoInfo", "find_video",
           "load_affwild2_index", "normalize_split", "read_annotation_file", "video_info"]
