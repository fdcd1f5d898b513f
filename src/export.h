/* mneme export: a run's model as a Hugging Face folder or PEFT adapter. */
#ifndef MNEME_EXPORT_H
#define MNEME_EXPORT_H

int export_main(int argc, char **argv);

#endif
