import numpy as np
from skimage.draw import disk

from analysis.instances import nuclei_from_stain, split_instances


def _two_touching_disks(shape=(60, 80)):
    mask = np.zeros(shape, bool)
    mask[disk((30, 28), 12, shape=shape)] = True
    mask[disk((30, 50), 12, shape=shape)] = True
    return mask


def test_split_instances_separates_touching_disks():
    labels = split_instances(_two_touching_disks(), min_distance=6)
    assert labels.max() == 2
    assert labels[30, 22] != labels[30, 56]
    assert labels[30, 22] > 0 and labels[30, 56] > 0


def test_split_instances_removes_small_and_handles_empty():
    mask = np.zeros((20, 20), bool)
    mask[2:4, 2:4] = True  # 4 px, below min_size
    assert split_instances(mask, min_size=10).max() == 0
    assert split_instances(np.zeros((5, 5), bool)).max() == 0


def test_nuclei_from_stain_finds_bright_nuclei():
    rng = np.random.default_rng(0)
    stain = rng.normal(100, 5, (60, 80))
    stain[_two_touching_disks()] += 400
    labels = nuclei_from_stain(stain.astype(np.uint16), min_distance=6)
    assert labels.max() == 2
    assert nuclei_from_stain(np.full((10, 10), 7, np.uint16)).max() == 0
