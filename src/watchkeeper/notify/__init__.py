"""Notifications: render a run's report into a message and deliver it through the channels.

``render`` builds the ``Message`` (subject, text, HTML) from a ``Report``; each channel module
(``sendgrid``, ``smtp``, ``apprise_channel``) implements the ``Notifier`` protocol of ``base``;
``dispatch`` sends through all of them with retries, logging ``notification.sent`` or
``notification.failed`` and never raising, so that a notification cannot break a run.
``service.Notifications`` is what the daemon holds: the channels built from the settings, the
announced-once memory (``announced``) and the background sender (``worker``).

Looking to add a channel? Write a class with a ``name`` and a ``send(message)`` that raises
``NotificationError(permanent=True)`` when a retry cannot help and ``TransientNotificationError``
when it can; translate the library's errors inside ``send``; never put a secret in a message or
an error; then build it in ``channels.build_notifiers`` from its settings.
"""
