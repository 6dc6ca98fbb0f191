"""Keypoints in and out: converters to the pyskl / mmaction2 2D skeleton pickle the pipeline reads
(``python -m jmrn keypoints to-pickle``) and its export from a finished pose stage
(``python -m jmrn keypoints export``); see docs/keypoints.md.

- ``pickle_io``: the pickle's annotations and input layouts, value checks, the writer (joints are
  reordered by name with ``jmrn.pose.keypoints.reorder``);
- ``plain``: per-video ``.npy`` / ``.json`` / ``.csv`` arrays;
- ``utd_mhad``: UTD-MHAD's ``a<action>_s<subject>_t<trial>_skeleton.mat`` files;
- ``ntu``: NTU RGB+D ``.skeleton`` files;
- ``export``: heatmap peaks of a pose stage's shards back to keypoints;
- ``command``: the command line.
"""
