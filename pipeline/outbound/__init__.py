"""How we reach a customer: a reply where they wrote, or e-mail, a phone callback, video."""
