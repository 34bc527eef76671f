"""Faces in raw images and videos: detection, tracking and 112x112 crops like the training data."""
from emenet.face.align import (ALIGN_TEMPLATE, CROP_SCALE, CROP_SHIFT_Y, alignment_transforms, crop_aligned, crop_face,
                               crop_faces, crop_regions, crop_to_image, region_box, similarity_transforms,
                               transform_regions)
from emenet.face.detector import (Detections, FaceDetector, HaarFaceDetector, default_detector, largest_face,
                                  make_detector)
from emenet.face.tracking import (FaceTracker, Track, box_iou, select_main_track, smooth_track_boxes,
                                  smooth_track_points)

__all__ = ["ALIGN_TEMPLATE", "CROP_SCALE", "CROP_SHIFT_Y", "Detections", "FaceDetector", "FaceTracker",
           "HaarFaceDetector", "Track", "alignment_transforms", "box_iou", "crop_aligned", "crop_face", "crop_faces",
           "crop_regions", "crop_to_image", "default_detector", "largest_face", "make_detector", "region_box",
           "select_main_track", "similarity_transforms", "smooth_track_boxes", "smooth_track_points",
           "transform_regions"]
