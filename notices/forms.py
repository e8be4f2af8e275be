"""A person's choices of notices and time zone. The form only cleans: accounts.services acts."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings

from notices.models import Kind


@cache
def _zone_choices() -> list[tuple[str, str]]:
    zones = sorted(zoneinfo.available_timezones())
    return [("", f"The server's ({settings.TIME_ZONE})")] + [(zone, zone) for zone in zones]


class NoticeSettingsForm(forms.Form):
    notices_on = forms.MultipleChoiceField(
        choices=Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Tell me, on this site and by email, when",
        help_text="Untick what you do not want to hear about.",
    )
    time_zone = forms.ChoiceField(
        choices=_zone_choices,
        required=False,
        label="Time zone",
        help_text="The times the pages show, and the time a scheduled batch goes out.",
    )

    def notices_off(self) -> list[str]:
        on = set(self.cleaned_data["notices_on"])
        return [kind for kind in Kind.values if kind not in on]
