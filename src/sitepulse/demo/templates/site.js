// The sample site's own behaviour: experiment variants, the billing toggle, tracked clicks.
// Loaded with defer after /sp.js, so window.sitepulse is ready whenever the collector loaded.
(function () {
  'use strict';

  function call(method) {
    var sp = window.sitepulse;
    var args = Array.prototype.slice.call(arguments, 1);
    if (sp && typeof sp[method] === 'function') sp[method].apply(null, args);
  }

  // One random number per page load picks each experiment's variant, shown in every
  // box of that experiment and reported once as an exposure.
  var chosen = {};
  var boxes = document.querySelectorAll('[data-experiment]');
  boxes.forEach(function (box) {
    var name = box.dataset.experiment;
    if (!(name in chosen)) {
      var variants = Array.prototype.map.call(box.querySelectorAll('[data-variant]'),
        function (el) { return el.dataset.variant; });
      chosen[name] = variants[Math.floor(Math.random() * variants.length)];
    }
    box.querySelectorAll('[data-variant]').forEach(function (el) {
      el.hidden = el.dataset.variant !== chosen[name];
    });
  });
  Object.keys(chosen).forEach(function (name) { call('exposure', name, chosen[name]); });

  document.addEventListener('click', function (event) {
    var el = event.target.closest && event.target.closest('[data-track]');
    if (!el) return;
    var props = {};
    Object.keys(el.dataset).forEach(function (key) {
      if (key !== 'track' && key !== 'variant') props[key] = el.dataset[key];
    });
    var box = el.closest('[data-experiment]');
    if (box) props.variant = chosen[box.dataset.experiment];
    call('track', el.dataset.track, props);
    if (el.dataset.track === 'newsletter_signup') {
      el.textContent = 'Subscribed, thank you';
      el.disabled = true;
    } else if (el.dataset.track === 'video_play') {
      el.textContent = 'The video is imaginary, like the company';
      el.disabled = true;
    }
  });

  var toggles = document.querySelectorAll('[data-billing]');
  toggles.forEach(function (button) {
    button.addEventListener('click', function () {
      var billing = button.dataset.billing;
      toggles.forEach(function (b) { b.classList.toggle('is-active', b === button); });
      document.querySelectorAll('[data-monthly]').forEach(function (price) {
        price.textContent = price.getAttribute('data-' + billing);
      });
      call('track', 'pricing_toggle', { billing: billing });
    });
  });
})();
