"""Device-side code: runs without Django or TensorFlow (classify.py)."""
