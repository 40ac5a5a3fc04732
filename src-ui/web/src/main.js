import "./style.css";
import { api, subscribe } from "./api.js";
import { startApp } from "./app.js";

startApp(document, api, subscribe);
