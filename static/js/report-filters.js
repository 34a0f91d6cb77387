// The report's period filters, kept in step while a person edits them: typing a date
// turns the period into "Custom range"; choosing a preset clears the dates, so the
// preset's own dates apply (and roll on with the calendar). Without this script the
// server reads typed dates the same way (reports.forms.ReportQueryForm).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const period = document.querySelector("form.filters select[name=period]");
  if (!period) return;
  const dates = [...period.form.querySelectorAll("input[name=start], input[name=end]")];
  for (const input of dates) {
    input.addEventListener("change", () => {
      if (input.value) period.value = "custom";
    });
  }
  period.addEventListener("change", () => {
    if (period.value !== "custom") {
      for (const input of dates) input.value = "";
    }
  });
});
