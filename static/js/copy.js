// A button with data-copy="#id" copies that input's value (a reward link, a new API key);
// navigator.clipboard needs HTTPS, so fall back to selecting it. Without JavaScript the input
// is still there to select by hand.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.dataset.copy);
    if (!input) return;
    var done = function () { button.textContent = "Copied"; };
    var select = function () { input.select(); document.execCommand("copy"); done(); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, select);
    } else {
      select();
    }
  });
})();
