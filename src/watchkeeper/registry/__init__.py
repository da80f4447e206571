"""The registry adapter: which digest is behind an image's tag, asked the cheap way.

``reference`` parses what users type into normalised references, ``auth`` finds the credentials
``docker login`` stored and parses auth challenges, ``digest`` sends one HEAD per image. The
package re-exports nothing: import from the module that defines a name.
"""
