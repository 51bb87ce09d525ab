/*
 * The admin token of an emulator started with --admin-token: kept in sessionStorage, asked for with the
 * modal dialog `#token-dialog` of index.html (Escape or Cancel declines). Calls refused for a missing or
 * wrong token share one question; after a decline the console stops asking until the user opens the
 * dialog again from the header.
 */

const KEY = "fleet-console.admin-token";
let asking = null;
let declined = false;

export function adminToken() {
  return sessionStorage.getItem(KEY) || "";
}

function dialogAnswer(refused) {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-refused").hidden = !refused;
  input.value = adminToken();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" && input.value ? input.value : null),
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

/**
 * Ask for the token (`refused`: say the last one was refused); resolves true when the user gave one, which
 * is then stored. `force` asks even after a decline (the header's button).
 */
export function askToken({ refused = false, force = false } = {}) {
  if (declined && !force) return Promise.resolve(false);
  if (!asking) {
    asking = dialogAnswer(refused).then((token) => {
      asking = null;
      declined = token === null;
      if (token !== null) sessionStorage.setItem(KEY, token);
      return token !== null;
    });
  }
  return asking;
}
