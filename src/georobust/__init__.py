"""georobust: the code of the book on certified and empirical adversarial robustness.

Each method is written once, in the subpackage of the book's part that treats it:

==========================  ===============================================================
``georobust.core``          data, models, training, the model zoo, attacks, evaluation
``georobust.theory``        the Neyman–Pearson lemma, certified radii and confidence bounds
``georobust.smoothing``     randomized smoothing: CERTIFY/PREDICT, logs, training, attacks
``georobust.regularizers``  ISO, Jacobian, Parseval, adversarial training, their geometry
``georobust.verification``  certificates of a network itself (Lipschitz bounds)
``georobust.book``          parameters and profiles, the chapter runner, run records
==========================  ===============================================================

Layering. Subpackages are ranked ``core`` = ``theory`` (0) < ``smoothing`` = ``regularizers``
= ``verification`` (1) < ``book`` (2). A module may import from its own subpackage and from
subpackages of a strictly lower rank, never from one of the same or a higher rank; so the
methods of one part never depend on another part, nothing depends on the book machinery, and
the notebooks (above everything) import from any of them. ``tests/test_layout.py`` checks it.
"""

__version__ = "0.1.0"

LAYERS = {"core": 0, "theory": 0, "smoothing": 1, "regularizers": 1, "verification": 1, "book": 2}
