/* Tier rows of the plan admin: add and remove rows.
 *
 * Without this script the form still works with the blank rows the server renders;
 * the buttons stay hidden. Inputs are named <field>-<row>-<column>: a new row takes the
 * next free row number, and the server reads rows in that order, skipping blank ones.
 * Clicks are handled on the document, so item rows the admin adds later work too.
 */
(function () {
  "use strict";

  var CELL_NAME = /-(\d+)-([a-z_]+)$/;
  var CELL_ID = /_(\d+)_([a-z_]+)$/;

  function rowsOf(widget) {
    return Array.prototype.slice.call(widget.querySelectorAll("[data-tier-row]"));
  }

  function inputsOf(row) {
    return Array.prototype.slice.call(row.querySelectorAll("input"));
  }

  function renumber(widget) {
    rowsOf(widget).forEach(function (row, position) {
      var number = position + 1;
      row.querySelector("[data-tier-number]").textContent = String(number);
      inputsOf(row).forEach(function (input) {
        input.setAttribute("aria-label", "Tier " + number + ": " + input.dataset.tierLabel);
      });
    });
  }

  function nextRowNumber(widget) {
    var highest = -1;
    widget.querySelectorAll("[data-tier-row] input").forEach(function (input) {
      var match = CELL_NAME.exec(input.name);
      if (match) {
        highest = Math.max(highest, parseInt(match[1], 10));
      }
    });
    return highest + 1;
  }

  function addRow(widget) {
    var rows = rowsOf(widget);
    var last = rows[rows.length - 1];
    var row = last.cloneNode(true);
    var number = nextRowNumber(widget);
    inputsOf(row).forEach(function (input) {
      input.value = "";
      input.name = input.name.replace(CELL_NAME, "-" + number + "-$2");
      if (input.id) {
        input.id = input.id.replace(CELL_ID, "_" + number + "_$2");
      }
    });
    last.parentNode.appendChild(row);
    renumber(widget);
    inputsOf(row)[0].focus();
  }

  function removeRow(widget, row) {
    if (rowsOf(widget).length > 1) {
      row.parentNode.removeChild(row);
    } else {
      // The last row stays, emptied: an empty row is no tier.
      inputsOf(row).forEach(function (input) {
        input.value = "";
      });
    }
    renumber(widget);
  }

  function showButtons(root) {
    root.querySelectorAll("[data-tier-add], [data-tier-remove]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-tier-add], [data-tier-remove]");
    if (!button) {
      return;
    }
    var widget = button.closest("[data-tier-rows]");
    if (button.hasAttribute("data-tier-add")) {
      addRow(widget);
    } else {
      removeRow(widget, button.closest("[data-tier-row]"));
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      showButtons(document);
    });
  } else {
    showButtons(document);
  }
  // Item rows the admin adds are copies of its hidden template row: already shown.
  document.addEventListener("formset:added", function (event) {
    showButtons(event.target);
  });
})();
