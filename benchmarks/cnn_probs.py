"""Where the cnn change head's probabilities lie: quantiles, and the mean on changed / unchanged pixels.

A diagnosis of the under-trained change head (README, "Learned CNN"). DATASET is a shared change
folder; KEY a geo.detect.cnn.dataset_key name to hold out (``none``: the shipped model, which saw
every training source). The first two pairs only.

    PYTHONPATH=. python benchmarks/cnn_probs.py ../shared/data/dsifn_cd dsifn
    PYTHONPATH=. python benchmarks/cnn_probs.py ../shared/data/train_cd/egy_bcd none
"""

import sys

import numpy as np

from geo.benchmark import list_triplets, read_image, read_label
from geo.detect.cnn import cnn_change_probability, held_out

ds, key = sys.argv[1], sys.argv[2]
for a_p, b_p, l_p in list_triplets(ds)[:2]:
    a, b, lab = read_image(a_p), read_image(b_p), read_label(l_p)
    with held_out(key if key != "none" else None):
        p, _ = cnn_change_probability(a, b)
    print(a_p.name, "q50/90/99/max", np.quantile(p, [.5, .9, .99]).round(3), p.max().round(3),
          "mean p on change", p[lab].mean().round(3), "off", p[~lab].mean().round(3))
