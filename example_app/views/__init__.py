"""ShopEasy's pages, one blueprint per area (projects, payments, network, activity, sandbox)."""
