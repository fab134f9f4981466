import './base.css';
import './actions.css';
import './search.css';
import './imports.css';
import './plot.css';
