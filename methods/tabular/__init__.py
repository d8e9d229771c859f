"""Tabular methods: scikit-learn's classic classifiers and Hopular."""

from methods.tabular import (
    gradient_boosting as gradient_boosting,
)
from methods.tabular import (
    hopular as hopular,
)
from methods.tabular import (
    logistic_regression as logistic_regression,
)
from methods.tabular import (
    mlp as mlp,
)
from methods.tabular import (
    random_forest as random_forest,
)
from methods.tabular import (
    svm as svm,
)
