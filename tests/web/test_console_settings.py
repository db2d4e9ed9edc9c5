"""The console's Settings page in Chromium: labelled fields with help in the visitor's language, a refused
value marked beside its field with nothing written, then a good value saved and applied at once."""

from __future__ import annotations

from pathlib import Path

from appliance.modules.register import RegisterOptions
from tests.web.console_helpers import configured_server, console_browser, needs_chromium, screenshot


@needs_chromium
async def test_settings_form_labels_validation_and_saving(tmp_path: Path) -> None:
    h = await configured_server(tmp_path)
    try:
        config_file = h.server.config.source
        assert config_file is not None
        before = config_file.read_text(encoding="utf-8")
        base = f"http://127.0.0.1:{h.http_port}"
        async with console_browser(base) as page:
            await page.goto(f"{base}/admin/settings?lang=de")
            field = page.get_by_label("Kürzestes Passwort")  # a label in words, in German, not a config key
            assert await field.get_attribute("type") == "number"
            await field.fill("0")  # below the allowed 1
            await page.get_by_label("Nachrichtenverlauf aufbewahren für").fill("ewig")
            await page.get_by_role("button", name="Speichern").click()
            assert "Nichts wurde gespeichert" in await page.locator("#settings-problems").inner_text()
            problems = await page.locator(".setting.invalid .problem").all_inner_texts()
            assert any("ganze Zahl von 1 bis 1024" in p for p in problems), problems
            assert any("30d, 12h oder 90m" in p for p in problems), problems
            assert await page.get_by_label("Kürzestes Passwort").input_value() == "0"  # what was typed stays
            assert config_file.read_text(encoding="utf-8") == before  # nothing written
            await screenshot(page, "console-settings-problems")

            await page.get_by_label("Kürzestes Passwort").fill("12")
            await page.get_by_label("Nachrichtenverlauf aufbewahren für").fill("90d")
            await page.get_by_role("button", name="Speichern").click()
            await page.wait_for_selector("text=Gespeichert und übernommen.")
        options = h.server.config.hosts[0].modules.of(RegisterOptions)
        assert options.min_password_length == 12  # applied to the running server
        assert "min_password_length = 12" in config_file.read_text(encoding="utf-8")
    finally:
        await h.close()
