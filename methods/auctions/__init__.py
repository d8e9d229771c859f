"""Auction mechanisms: classic GSP and separable VCG, the MNL welfare (VCG) and revenue (Myerson)
mechanisms, and two cascade approximations."""

from methods.auctions import cascade_dp as cascade_dp
from methods.auctions import cascade_greedy as cascade_greedy
from methods.auctions import gsp as gsp
from methods.auctions import mnl_revenue as mnl_revenue
from methods.auctions import mnl_welfare as mnl_welfare
from methods.auctions import vcg_separable as vcg_separable
