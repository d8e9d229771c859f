"""The tabular family: a table and a cross-validation protocol; methods are classifiers with predict_proba."""

from tasks.tabular import tasks as tasks
from tasks.tabular.protocol import TabularMethod as TabularMethod
