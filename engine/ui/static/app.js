// The mlbuild UI: routes on the URL path; each page renders into <main id="app">.
//   /  /builds                 the builds list (?target= &status= &commit= filter it)
//   /builds/<id>               a build: its DAG and the selected step (#run=<key>&tab=<tab>)
//   /targets  /targets/<label> the targets, and one target's history
//   /compare?builds=A,B        builds side by side: params, metrics, series, steps

import { buildPage } from "./build.js";
import { comparePage } from "./compare.js";
import { errorBox, h } from "./dom.js";
import { buildsPage, targetPage, targetsPage } from "./pages.js";

async function route() {
  const root = document.getElementById("app");
  const path = decodeURIComponent(location.pathname).replace(/\/+$/, "") || "/";
  const nav = (name) => document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("on", a.dataset.nav === name));
  try {
    let m;
    if (path === "/" || path === "/builds") {
      nav("builds");
      document.title = "Builds · mlbuild";
      await buildsPage(root);
    } else if ((m = path.match(/^\/builds\/([^/]+)$/))) {
      nav("builds");
      document.title = `Build ${m[1]} · mlbuild`;  // the page names it fully once loaded
      await buildPage(root, m[1]);
    } else if (path === "/compare") {
      nav("builds");
      document.title = "Compare · mlbuild";
      await comparePage(root);
    } else if (path === "/targets") {
      nav("targets");
      document.title = "Targets · mlbuild";
      await targetsPage(root);
    } else if ((m = path.match(/^\/targets\/(.+)$/))) {
      nav("targets");
      const label = "//" + m[1].replace(/^\/+/, "");
      document.title = `${label} · mlbuild`;
      await targetPage(root, label);
    } else {
      nav(null);
      document.title = "Not found · mlbuild";
      root.replaceChildren(h("section", { class: "not-found" }, h("h1", {}, "Not found"),
        h("p", {}, "Nothing lives at ", h("code", {}, location.pathname), " in this UI."),
        h("p", {}, h("a", { href: "/builds" }, "All builds"), " · ", h("a", { href: "/targets" }, "All targets"))));
    }
  } catch (err) {
    root.replaceChildren(errorBox(err));
  }
}

route();
