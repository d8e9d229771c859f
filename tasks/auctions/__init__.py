"""The auctions family: position auctions inside generated content; methods are mechanisms (an
allocation rule and a payment rule) for MNL or cascade users."""

from tasks.auctions import tasks as tasks
from tasks.auctions.protocol import AuctionMechanism as AuctionMechanism
