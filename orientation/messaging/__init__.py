"""Messaging: the outbox (Message rows), its transports (SMTP, SMS gateway, files, printed letters),
templates and letters. It knows nothing of what a message is about: a higher module that writes
messages registers a Composer (outbox.register) that gives a message its text, its letter and what
happens once it is sent. Orientation's notices (orientation.notices) and kiosque's invitations
(kiosque.messaging) are the two composers today.
"""
