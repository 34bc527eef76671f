"""Faces in raw images and videos: detection, tracking and 112x112 crops like the training data."""
from emenet.face.align import CROP_SCALE, CROP_SHIFT_Y, crop_face, crop_faces, crop_regions, crop_to_image, region_box
from emenet.face.detector import Detections, FaceDetector, HaarFaceDetector, largest_face
from emenet.face.tracking import FaceTracker, Track, box_iou, select_main_track, smooth_track_boxes

__all__ = ["CROP_SCALE", "CROP_SHIFT_Y", "Detections", "FaceDetector", "FaceTracker", "HaarFaceDetector", "Track",
           "box_iou", "crop_face", "crop_faces", "crop_regions", "crop_to_image", "largest_face", "region_box",
           "select_main_track", "smooth_track_boxes"]
