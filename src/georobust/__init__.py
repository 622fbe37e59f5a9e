"""georobust: the code of the book on certified and empirical adversarial robustness.

Each method is one small module; the chapter notebooks under ``notebooks/`` import them.
"""

__version__ = "0.1.0"
