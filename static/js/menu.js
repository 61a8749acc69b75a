// The header's menu on a phone: the links fold behind a "Menu" button so that photos start near the
// top of the screen. Without this script the links simply show (the button stays hidden).
(() => {
  const header = document.querySelector(".site-header");
  const button = header && header.querySelector("[data-menu-toggle]");
  if (!button) return;
  header.classList.add("has-menu");
  const show = (open) => {
    header.classList.toggle("menu-open", open);
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => show(!header.classList.contains("menu-open")));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && header.classList.contains("menu-open")) {
      show(false);
      button.focus();
    }
  });
})();
