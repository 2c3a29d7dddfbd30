"""Data layer: phantom generator, DICOM series and mask readers, preprocessing, TFDS builders, batching."""
