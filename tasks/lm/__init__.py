"""The language-modeling family: a corpus and a model body; methods are output heads."""
