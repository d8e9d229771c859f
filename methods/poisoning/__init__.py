"""Poisoning defenses: DPA and FA, each with plurality or run-off election aggregation."""

from methods.poisoning import dpa as dpa
from methods.poisoning import dpa_roe as dpa_roe
from methods.poisoning import fa as fa
from methods.poisoning import fa_roe as fa_roe
