"""TFDS builders: breast_phantom and duke_breast_mri (array_record files, read without TensorFlow)."""


def make_builder(data_config, data_dir: str):
  """The builder named by `data_config.name`, configured from `data_config`, writing to `data_dir`.

  Imports tensorflow_datasets lazily (it is only needed to build and read datasets).
  """
  if data_config.name == "breast_phantom":
    from mrixai_jax.data.tfds import breast_phantom
    config = breast_phantom.make_config(data_config.image_size, data_config.num_slices,
                                        data_config.seed, data_config.phantom_slices_per_patient)
    return breast_phantom.BreastPhantom(data_dir=data_dir, config=config, file_format="array_record")
  if data_config.name == "duke_breast_mri":
    from mrixai_jax.data.tfds import duke_breast_mri
    config = duke_breast_mri.make_config(data_config)
    return duke_breast_mri.DukeBreastMri(data_dir=data_dir, config=config, file_format="array_record")
  raise ValueError(f"unknown data.name {data_config.name!r}: expected breast_phantom or duke_breast_mri")
