"""TFDS builders: breast_phantom and duke_breast_mri (array_record files)."""
