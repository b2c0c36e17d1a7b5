//! Reports of a stored run in several formats, and comparisons of two runs. (Being written.)
