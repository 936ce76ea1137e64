"""The client: pairs with hubs, receives and decrypts events, clips and livestreams."""
