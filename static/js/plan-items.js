/* Plan items in the admin: show the fields an item's choices make apply.
 *
 * Package size only for the package charge model; dimension only for a meter that is
 * broken down by an attribute (its option carries data-group-by, which names the
 * attribute in the dimension's placeholder). Without this script every field shows
 * and the server explains what does not apply.
 */
(function () {
  "use strict";

  function fieldOf(form, name) {
    return form.querySelector("[name$='-" + name + "']");
  }

  function boxOf(input) {
    return input && (input.closest(".fieldBox") || input.closest(".form-row"));
  }

  function show(input, visible) {
    var box = boxOf(input);
    if (box) {
      box.classList.toggle("plan-field-off", !visible);
    }
  }

  function update(form) {
    var model = fieldOf(form, "charge_model");
    var size = fieldOf(form, "package_size");
    if (model && size) {
      show(size, model.value === "package" || size.value !== "");
    }
    var meter = fieldOf(form, "meter");
    var dimension = fieldOf(form, "dimension");
    if (meter && dimension && meter.tagName === "SELECT") {
      var option = meter.options[meter.selectedIndex];
      var attribute = option ? option.getAttribute("data-group-by") : "";
      show(dimension, Boolean(attribute) || dimension.value !== "");
      dimension.placeholder = attribute ? attribute + " value, or empty for the rest" : "";
    }
  }

  function itemForms() {
    return Array.prototype.slice.call(document.querySelectorAll(".inline-related"));
  }

  document.addEventListener("change", function (event) {
    var form = event.target.closest(".inline-related");
    if (form && /-(charge_model|meter)$/.test(event.target.name || "")) {
      update(form);
    }
  });
  document.addEventListener("formset:added", function (event) {
    update(event.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    itemForms().forEach(update);
  });
})();
