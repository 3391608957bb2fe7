// The chat page's entry point.

import "./styles/app.css";
import "./styles/code.css";
import { App } from "./app";

new App().start();
