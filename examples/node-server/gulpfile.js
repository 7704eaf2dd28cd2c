import gulp from 'gulp'; import { CapstanRegistry } from 'gulp-capstan/tasks';
gulp.registry(new CapstanRegistry({ forward: ['8080:8080'] }));
